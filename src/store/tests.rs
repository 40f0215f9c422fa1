//! Group commit: many writers, one COMMIT, each writer's work all-or-nothing.

use std::sync::Arc;

use super::*;

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|c| {
            c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(StoreError::from)
        })
        .unwrap();
    (dir, Arc::new(store))
}

fn count(store: &Store) -> i64 {
    store
        .read(|c| Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn concurrent_writers_all_commit_and_failures_undo_only_their_own_work() {
    let (_dir, store) = store();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = t * 1000 + i;
                    let result = store.write(|c| {
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                        if i % 10 == 0 {
                            // A failing member: its insert must vanish, nobody else's.
                            c.execute("INSERT INTO t (k, v) VALUES (?1, NULL)", [k + 500])?;
                        }
                        Ok::<_, StoreError>(())
                    });
                    assert_eq!(result.is_err(), i % 10 == 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count(&store), 8 * 180);
    let failed_rows: i64 = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row(
                "SELECT count(*) FROM t WHERE k % 1000 % 10 = 0",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(failed_rows, 0);
}

#[test]
fn a_write_is_visible_to_readers_when_it_returns() {
    let (_dir, store) = store();
    for k in 0..50 {
        store
            .write(|c| {
                c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])
                    .map_err(StoreError::from)
            })
            .unwrap();
        assert_eq!(count(&store), k + 1);
    }
}

#[test]
fn a_failed_write_leaves_no_transaction_open() {
    let (dir, store) = store();
    let r = store.write(|c| {
        c.execute("INSERT INTO t (k, v) VALUES (1, NULL)", [])
            .map_err(StoreError::from)
    });
    assert!(r.is_err());
    // Another connection (another process, e.g. `countersign token create`) can write.
    let other = Connection::open(dir.path().join("db")).unwrap();
    other.busy_timeout(Duration::from_millis(200)).unwrap();
    other
        .execute("INSERT INTO t (k, v) VALUES (2, 'y')", [])
        .unwrap();
    assert_eq!(count(&store), 1);
}

#[test]
fn when_the_disk_is_full_every_acknowledged_write_is_kept_and_no_other() {
    let (_dir, store) = store();
    // A database that cannot grow past its current size plus a little: inserts start
    // failing with SQLITE_FULL part-way, inside batches shared by other writers.
    store
        .write(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(
                &format!("PRAGMA max_page_count = {}", pages + 8),
                [],
                |_| Ok(()),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..150 {
                    let k = t * 1000 + i;
                    let big = "x".repeat(2000);
                    let ok = store
                        .write(|c| {
                            c.execute(
                                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                                rusqlite::params![k, big],
                            )
                            .map_err(StoreError::from)
                        })
                        .is_ok();
                    if ok {
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
            let mut st = c.prepare("SELECT k FROM t ORDER BY k")?;
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
