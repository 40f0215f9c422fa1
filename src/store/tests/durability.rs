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
        // 30 operations of 8 KB in flight at once: batches, as under load. 24 MB in all.
        let ops: Vec<Box<dyn FnOnce() -> Result<(), StoreError> + Send>> = (0..30)
            .map(|i| {
                let s = store.clone();
                let op: Box<dyn FnOnce() -> Result<(), StoreError> + Send> =
                    Box::new(move || insert(&s, round * 100 + i, Some(&"x".repeat(8000))));
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
    assert_eq!(count(&store), 3000);
    assert!(
        largest < 12 << 20,
        "the WAL grew to {largest} bytes for 24 MB written: checkpoints are not keeping up"
    );
}

/// Writes made alone (CLI commands, the expiry sweep) checkpoint after their own COMMIT
/// (SQLite's automatic checkpoint), as batches do.
#[test]
fn the_wal_stays_bounded_under_writes_made_alone() {
    let (dir, store) = store();
    let wal = dir.path().join("db-wal");
    let mut largest = 0;
    for k in 0..1500 {
        insert(&store, k, Some(&"x".repeat(8000))).unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    assert_eq!(count(&store), 1500);
    assert!(
        largest < 12 << 20,
        "the WAL grew to {largest} bytes for 12 MB written alone: no checkpoints"
    );
}
