//! Group commit: many writers, one COMMIT, each writer's work all-or-nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;

/// Submits every operation before awaiting any (so they queue up and share batches),
/// then returns their results in order.
fn submit_all<T: Send + 'static>(
    store: &Store,
    ops: Vec<Box<dyn FnOnce() -> T + Send>>,
) -> Vec<Result<T, StoreError>> {
    let pending: Vec<_> = ops.into_iter().map(|op| store.submit(op)).collect();
    block_on(async {
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await);
        }
        out
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Submits `op` so that it holds its batch open, and returns once it is running: every
/// operation submitted before `release` is sent lands together in the next batch.
fn hold_a_batch<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce() -> T + Send + 'static,
) -> (
    impl std::future::Future<Output = Result<T, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let held = store.submit(move || {
        let _ = running_tx.send(());
        let _ = release_rx.recv();
        op()
    });
    running_rx.recv().unwrap();
    (held, release_tx)
}

/// Lets the database grow by `pages` more pages only, so writes then fail with
/// SQLITE_FULL as on a full disk.
fn limit_growth(store: &Store, pages: i64) {
    store
        .write(|c| {
            let now: i64 = c.sql().query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.sql().query_row(
                &format!("PRAGMA max_page_count = {}", now + pages),
                [],
                |_| Ok(()),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

fn insert(store: &Store, k: i64, v: Option<&str>) -> Result<(), StoreError> {
    store.write(|c| {
        c.sql()
            .execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![k, v],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

#[test]
fn submitted_operations_share_commits_and_a_failure_undoes_only_its_own_write() {
    let (_dir, store) = store();
    // The first operation holds its batch open until all the others are queued, so
    // they must all land in the second batch: exactly two COMMITs.
    let s = store.clone();
    let (first, release) = hold_a_batch(&store, move || insert(&s, 0, Some("first")));
    let mut pending = Vec::new();
    for k in 1..200 {
        let s = store.clone();
        pending.push(store.submit(move || {
            // Every tenth operation makes a write that fails after inserting its row:
            // that write must vanish, nobody else's.
            insert(&s, k, Some("x"))?;
            if k % 10 == 0 {
                s.write(|c| {
                    c.sql()
                        .execute("INSERT INTO t (k, v) VALUES (?1, 'y')", [k + 1000])?;
                    c.sql()
                        .execute("INSERT INTO t (k, v) VALUES (?1, NULL)", [k + 2000])?;
                    Ok::<_, StoreError>(())
                })?;
            }
            Ok(())
        }));
    }
    release.send(()).unwrap();
    let results: Vec<_> = block_on(async {
        let mut out = vec![first.await];
        for p in pending {
            out.push(p.await);
        }
        out
    });
    for (k, r) in results.iter().enumerate() {
        // The failing write's error reaches its operation; its first insert stays.
        assert_eq!(
            r.as_ref().is_ok_and(|r| r.is_err()),
            k > 0 && k % 10 == 0,
            "{k}"
        );
    }
    assert_eq!(
        count(&store),
        200,
        "one row per operation, none of the failed writes"
    );
    assert_eq!(store.writer.batches.load(Ordering::Relaxed), 2);
    assert_eq!(store.writer.members.load(Ordering::Relaxed), 200);
}

#[test]
fn an_operation_reads_its_own_writes_and_others_see_them_only_after_commit() {
    let (_dir, store) = store();
    let s = store.clone();
    let results = submit_all(
        &store,
        vec![Box::new(move || {
            insert(&s, 1, Some("mine"))?;
            let inside: i64 = s.read(|c| {
                Ok::<_, StoreError>(
                    c.sql()
                        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?,
                )
            })?;
            // Another thread reads committed data only: not yet this row.
            let s2 = s.clone();
            let outside = std::thread::spawn(move || count(&s2)).join().unwrap();
            Ok::<_, StoreError>((inside, outside))
        })],
    );
    assert_eq!(results[0].as_ref().unwrap().as_ref().unwrap(), &(1, 0));
    assert_eq!(count(&store), 1);
}

#[test]
fn commits_wake_subscribers_after_the_data_is_readable() {
    let (_dir, store) = store();
    // A subscriber on its own thread reads as soon as it is woken: the row must already
    // be there (a notification sent before COMMIT would find 0 rows).
    let watch = |store: &Arc<Store>| {
        let mut commits = store.subscribe_commits();
        commits.mark_unchanged();
        let store = store.clone();
        std::thread::spawn(move || {
            block_on(async {
                commits.changed().await.unwrap();
            });
            count(&store)
        })
    };
    let woken = watch(&store);
    let s = store.clone();
    submit_all(&store, vec![Box::new(move || insert(&s, 7, Some("x")))])
        .remove(0)
        .unwrap()
        .unwrap();
    assert_eq!(woken.join().unwrap(), 1);
    // A write made alone (e.g. by an operator command in-process) wakes them too.
    let woken = watch(&store);
    insert(&store, 8, Some("y")).unwrap();
    assert_eq!(woken.join().unwrap(), 2);
}

#[test]
fn dropping_the_store_closes_the_database_cleanly() {
    let (dir, store) = store();
    let s = store.clone();
    submit_all(&store, vec![Box::new(move || insert(&s, 1, Some("x")))])
        .remove(0)
        .unwrap()
        .unwrap();
    let _ = count(&store);
    drop(store);
    // The last connection checkpointed and removed the WAL: the file alone has it all.
    assert!(!dir.path().join("db-wal").exists());
    let conn = Connection::open(dir.path().join("db")).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|c| {
            c.sql()
                .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(StoreError::from)
        })
        .unwrap();
    (dir, Arc::new(store))
}

fn count(store: &Store) -> i64 {
    store
        .read(|c| {
            Ok::<_, StoreError>(
                c.sql()
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?,
            )
        })
        .unwrap()
}

#[test]
fn writers_on_other_threads_write_alone_and_failures_undo_only_their_own_work() {
    let (_dir, store) = store();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let k = t * 1000 + i;
                    let result = store.write(|c| {
                        c.sql()
                            .execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                        if i % 10 == 0 {
                            // A failing member: its insert must vanish, nobody else's.
                            c.sql()
                                .execute("INSERT INTO t (k, v) VALUES (?1, NULL)", [k + 500])?;
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
            Ok::<_, StoreError>(c.sql().query_row(
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
                c.sql()
                    .execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])
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
        c.sql()
            .execute("INSERT INTO t (k, v) VALUES (1, NULL)", [])
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
fn migrating_a_version_2_database_keeps_every_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let conn = Connection::open(&path).unwrap();
        for sql in &super::migrations::MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, expires_at) \
             VALUES ('r-aaaaaaaaaaaa', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', 'issued', 1, 2); \
             INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, valid_before, certificate, revoked_at, revoked_by, revoke_reason, revoked_seq) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaaa', 'alice', 'prod-db', 'kid', 1, 99, 'cert', 5, 'bob', 'why', 1);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let row: (i64, String, Option<String>, i64) = store
        .read(|c| {
            Ok::<_, StoreError>(c.sql().query_row(
                "SELECT serial, request_id, revoked_by, revoked_seq FROM certificates",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?)
        })
        .unwrap();
    assert_eq!(
        row,
        (i64::MAX, "r-aaaaaaaaaaaa".into(), Some("bob".into()), 1)
    );
    let version: i64 = store
        .read(|c| Ok::<_, StoreError>(c.sql().query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version as usize, super::migrations::MIGRATIONS.len());
    // The serial is still unique (the request exists, so only the serial can clash).
    store
        .write(|c| {
            c.sql().execute(
                "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, expires_at) \
                 VALUES ('r-aaaaaaaaaaab', 'prod-db', 'alice', 'x', 60, 'k', 'f', '[]', 'd', 'issued', 1, 2)",
                [],
            )
            .map_err(StoreError::from)
        })
        .unwrap();
    let dup = store.write(|c| {
        c.sql().execute(
            "INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, valid_before, certificate) \
             VALUES (9223372036854775807, 'r-aaaaaaaaaaab', 'a', 'r', 'k', 1, 2, 'c')",
            [],
        )
        .map_err(StoreError::from)
    });
    let err = dup.unwrap_err().to_string();
    assert!(
        matches!(
            store.read(|c| Ok::<_, StoreError>(c.sql().query_row(
                "SELECT count(*) FROM certificates",
                [],
                |r| r.get::<_, i64>(0)
            )?)),
            Ok(1)
        ),
        "{err}"
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

/// Opening a database whose schema is current only reads it: operator commands (`audit
/// verify`, `token create`) work while another process holds the write lock.
#[test]
fn opening_a_current_database_takes_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(Store::open(&path).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let store = Store::open(&path).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let version: i64 = store
        .read(|c| Ok::<_, StoreError>(c.sql().query_row("PRAGMA user_version", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(version as usize, super::migrations::MIGRATIONS.len());
    holder.execute_batch("ROLLBACK").unwrap();
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

#[test]
fn when_a_batch_is_lost_every_answer_that_could_depend_on_it_is_an_error() {
    let (_dir, store) = store();
    limit_growth(&store, 4);
    let read = |s: &Arc<Store>| -> Result<i64, StoreError> {
        s.read(|c| {
            Ok(c.sql()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
        })
    };
    // One batch, in this order: a read before any write; a small write; a read that
    // sees it; a write too big for the disk, which makes SQLite drop the transaction.
    let s = store.clone();
    let (first, release) = hold_a_batch(&store, move || read(&s));
    let s = store.clone();
    let small = store.submit(move || insert(&s, 1, Some("x")).map(|()| 1));
    let s = store.clone();
    let after = store.submit(move || read(&s));
    let s = store.clone();
    let big = store.submit(move || insert(&s, 2, Some(&"x".repeat(200_000))).map(|()| 2));
    release.send(()).unwrap();
    let (first, small, after, big) =
        block_on(async { (first.await, small.await, after.await, big.await) });
    assert_eq!(
        first.unwrap().unwrap(),
        0,
        "read before any write: committed state"
    );
    assert!(small.is_err(), "its write was lost: {small:?}");
    assert!(
        after.is_err(),
        "it answered from a write that was lost: {after:?}"
    );
    assert!(matches!(big, Ok(Err(_)) | Err(_)), "{big:?}");
    assert_eq!(count(&store), 0);
}

#[test]
fn a_write_inside_a_write_made_alone_is_refused_not_a_deadlock() {
    let (_dir, store) = store();
    let inner = store.write(|_| Ok::<_, StoreError>(insert(&store, 1, Some("x"))));
    assert!(matches!(inner, Ok(Err(StoreError::Nested))), "{inner:?}");
    // And the store still works afterwards.
    insert(&store, 2, Some("y")).unwrap();
    assert_eq!(count(&store), 1);
}
