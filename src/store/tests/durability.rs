//! What survives a full disk, and the WAL staying bounded whatever the writes.

use super::*;

#[test]
fn when_the_disk_is_full_every_acknowledged_write_is_kept_and_no_other() {
    let (_dir, store) = store();
    // Inserts start failing with SQLITE_FULL part-way, inside batches shared by others.
    limit_growth(&store, 8);
    // Six clients, each with one operation in flight at a time, as the server has.
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..150 {
                    let k = t * 1000 + i;
                    let s = store.clone();
                    let result = submit_all(
                        &store,
                        vec![Box::new(move || insert(&s, k, Some(&"x".repeat(2000))))],
                    )
                    .remove(0);
                    if matches!(result, Ok(Ok(()))) {
                        acked.push(k);
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    let stored: Vec<i64> = store
        .read(|c| {
            let mut st = c.sql().prepare("SELECT k FROM t ORDER BY k")?;
            let rows = st
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok::<_, StoreError>(rows)
        })
        .unwrap();
    assert!(
        acked.len() < 900,
        "the disk never filled up; the test proves nothing"
    );
    assert_eq!(
        stored, acked,
        "acknowledged writes and stored rows must be the same set"
    );
}

#[test]
fn the_wal_stays_bounded_under_steady_writes_and_reads() {
    let (dir, store) = store();
    let wal = dir.path().join("db-wal");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers that never pause, as the server's point reads under load: a checkpoint
    // must still catch up and the WAL restart.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut k = r;
                while !stop.load(Ordering::Relaxed) {
                    k = (k + 7) % 3000;
                    store
                        .read(|c| {
                            c.sql()
                                .query_row("SELECT count(*) FROM t WHERE k = ?1", [k], |r| {
                                    r.get::<_, i64>(0)
                                })
                                .map_err(StoreError::from)
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let mut largest = 0;
    for round in 0..100 {
        // 30 operations in flight at once: batches, as under load.
        let ops: Vec<Box<dyn FnOnce() -> Result<(), StoreError> + Send>> = (0..30)
            .map(|i| {
                let s = store.clone();
                let op: Box<dyn FnOnce() -> Result<(), StoreError> + Send> =
                    Box::new(move || insert(&s, round * 100 + i, Some(&"x".repeat(ROW))));
                op
            })
            .collect();
        for r in submit_all(&store, ops) {
            r.unwrap().unwrap();
        }
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(count(&store), ROWS);
    assert!(
        largest < wal_bound(),
        "the WAL grew to {largest} bytes for {} MB written: checkpoints are not keeping up",
        WRITTEN >> 20
    );
    // Under the bound (two thirds of what was written), the WAL started again: by a
    // RESTART, or, when the machine is busy and the readers never pause, by SQLite at a
    // write once the writer's own checkpoints copied everything past FORCE_AT.
    let [copied, restarted, _, on_writer, _] = store.stats().wal_checkpoints;
    assert!(
        copied >= 1 && restarted + on_writer >= 1,
        "{:?}",
        store.stats().wal_checkpoints
    );
}

/// The rows the WAL tests write (15 frames each), and how many: 168 MB.
const ROW: usize = 56_000;
const ROWS: i64 = 3_000;
const WRITTEN: u64 = ROW as u64 * ROWS as u64;

/// The most bytes the WAL may take: [`FORCE_AT`](crate::store::writer::checkpoint)
/// frames, past which the writer checkpoints after every COMMIT too and asks for a RESTART
/// every `RETRY_PAST_FORCE` frames once all is copied (on a busy machine the thread's
/// passes may not catch up before), twice that, and a batch more (of 4 KiB pages, each
/// with its 24-byte frame header). Two thirds of what these tests write.
fn wal_bound() -> u64 {
    use crate::store::writer::checkpoint::{FORCE_AT, RETRY_PAST_FORCE};
    let frames = u64::from(FORCE_AT + 2 * RETRY_PAST_FORCE) + 1_000;
    let bound = frames * (4096 + 24);
    assert!(
        bound * 3 / 2 < WRITTEN,
        "the tests must write more than the WAL holds"
    );
    bound
}

/// Writes made alone (CLI commands, the expiry sweep) wake the checkpoint thread and
/// checkpoint after their own COMMIT, as batches do.
#[test]
fn the_wal_stays_bounded_under_writes_made_alone() {
    let (dir, store) = store();
    let wal = dir.path().join("db-wal");
    let mut largest = 0;
    for k in 0..ROWS {
        insert(&store, k, Some(&"x".repeat(ROW))).unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    assert_eq!(count(&store), ROWS);
    assert!(
        largest < wal_bound(),
        "the WAL grew to {largest} bytes for {} MB written alone: no checkpoints",
        WRITTEN >> 20
    );
    // The thread copied and the writer restarted the WAL; with nothing else running,
    // the writer never had to checkpoint after a COMMIT.
    let [copied, restarted, _, on_writer, _] = store.stats().wal_checkpoints;
    assert!(
        copied >= 1 && restarted >= 1 && on_writer == 0,
        "{:?}",
        store.stats().wal_checkpoints
    );
}

/// A read that stays in the WAL for long (`audit verify` over a large log) holds no
/// write up: the RESTART, which keeps every write waiting while it waits for readers,
/// gives up after a few milliseconds instead of the store's 10 s busy timeout; the
/// thread asks for no more RESTARTs while its passes cannot copy past the reader; and
/// the WAL starts again once the reader has left.
#[test]
fn a_long_read_holds_no_write_up_and_the_wal_restarts_after_it() {
    use crate::store::writer::checkpoint::{CYCLE, FORCE_AT, WAIT_AT_MOST};
    let (dir, store) = store();
    let wal = dir.path().join("db-wal");
    let frames = || (std::fs::metadata(&wal).map_or(0, |m| m.len()) / (4096 + 24)) as u32;
    let row = "x".repeat(ROW);
    // The WAL nearly a cycle long, then a snapshot taken and kept, as a long scan keeps
    // it: the thread's passes at CYCLE copy up to it and leave little, so it asks for a
    // RESTART, which finds the reader.
    let mut k = 0;
    while frames() < CYCLE - 300 {
        insert(&store, k, Some(&row)).unwrap();
        k += 1;
    }
    let reader = rusqlite::Connection::open(dir.path().join("db")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen = |r: &rusqlite::Connection| -> i64 {
        r.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    };
    let before = seen(&reader);
    assert_eq!(before, k);
    // Then 2,000 rows (30,000 frames): past FORCE_AT, none copied back while it stays.
    let mut slowest = std::time::Duration::ZERO;
    for _ in 0..2_000 {
        let began = std::time::Instant::now();
        insert(&store, k, Some(&row)).unwrap();
        slowest = slowest.max(began.elapsed());
        k += 1;
    }
    let [_, restarted, gave_up, on_writer, _] = store.stats().wal_checkpoints;
    assert!(
        gave_up == 1 && on_writer >= 1 && restarted == 0,
        "one RESTART met the reader and gave up (none asked for after it), the writer \
         checkpointed past FORCE_AT: {:?}",
        store.stats().wal_checkpoints
    );
    assert_eq!(
        seen(&reader),
        before,
        "the reader kept its snapshot through the writes"
    );
    // A write held up by a checkpoint waiting for the reader would take 10 s (the store's
    // busy timeout) instead of milliseconds: a bound far from both.
    assert!(
        slowest < WAIT_AT_MOST * 100,
        "a write took {slowest:?} while a reader stayed: a checkpoint waited for it"
    );
    let pinned = std::fs::metadata(&wal).unwrap().len();
    assert!(
        pinned > u64::from(FORCE_AT) * 4096,
        "the WAL ({pinned} bytes) was copied back past the reader's snapshot"
    );
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    // Once the reader has left, the WAL starts again: the next COMMIT's checkpoint copies
    // everything and the writer asks itself for the RESTART, within a few writes rather
    // than at the thread's next cycle (thousands of frames on). As much again written
    // makes the file no longer than by a write or two.
    for _ in 0..10 {
        insert(&store, k, Some(&row)).unwrap();
        k += 1;
    }
    assert!(
        store.stats().wal_checkpoints[1] >= 1,
        "no RESTART within 10 writes after the reader left: {:?}",
        store.stats().wal_checkpoints
    );
    for _ in 0..1_990 {
        insert(&store, k, Some(&row)).unwrap();
        k += 1;
    }
    assert_eq!(count(&store), k);
    let after = std::fs::metadata(&wal).unwrap().len();
    assert!(
        after < pinned + (1 << 20),
        "the WAL grew from {pinned} to {after} bytes after the reader left: it never restarted"
    );
    // The RESTART's short busy handler was for it alone: a write still waits out another
    // connection's write lock (another process's, as an operator command's) as before.
    let other = rusqlite::Connection::open(dir.path().join("db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(WAIT_AT_MOST * 40);
        other.execute_batch("COMMIT").unwrap();
    });
    insert(&store, k, Some("after"))
        .expect("a write waits for another connection's lock, as with the 10 s timeout");
    holder.join().unwrap();
}
