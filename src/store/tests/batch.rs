//! Group commit: many writers, one COMMIT, each writer's work all-or-nothing.

use super::*;

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
    assert_eq!(store.lite().writer.batches.load(Ordering::Relaxed), 2);
    assert_eq!(store.lite().writer.members.load(Ordering::Relaxed), 200);
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

/// Work queued with `Tx::after_commit` runs once its write is durable: never for a write
/// undone alone in the batch, whose neighbours' work still runs; alone or in a batch.
#[test]
fn after_commit_work_runs_only_for_writes_that_committed() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let (_dir, store) = store();
    let ran = Arc::new(AtomicU32::new(0));
    let counted_write = |s: &Store, k: i64, v: Option<&'static str>, ran: &Arc<AtomicU32>| {
        let ran = ran.clone();
        s.write(|c| {
            c.after_commit(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            });
            c.sql().execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![k, v],
            )?;
            Ok::<_, StoreError>(())
        })
    };
    // Alone (not in a batch): a write that fails runs nothing, one that commits runs.
    assert!(counted_write(&store, 1, None, &ran).is_err());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    counted_write(&store, 1, Some("a"), &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // In a batch: the failed write's work is dropped, the others' runs before answers.
    let mut pending = Vec::new();
    for k in 2..12 {
        let (s, r) = (store.clone(), ran.clone());
        let v = if k % 2 == 0 { Some("b") } else { None };
        pending.push(store.submit(move || counted_write(&s, k, v, &r)));
    }
    let results: Vec<_> = block_on(async {
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.unwrap());
        }
        out
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    assert_eq!(ran.load(Ordering::SeqCst), 6);
    // A read transaction queues nothing.
    let r = ran.clone();
    store
        .read(|c| {
            c.after_commit(move || {
                r.fetch_add(100, Ordering::SeqCst);
            });
            Ok::<_, StoreError>(())
        })
        .unwrap();
    counted_write(&store, 20, Some("c"), &ran).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 7);
}

/// The first write a batch keeps runs without a SAVEPOINT of its own: when it fails or
/// panics, its transaction is rolled back and begun again, so nothing of it stays, and
/// the writes after it in the same batch still commit.
#[test]
fn a_first_write_that_fails_or_panics_leaves_nothing_and_the_batch_goes_on() {
    let (_dir, store) = store();
    let half = |c: &Tx<'_>, k: i64| -> Result<(), StoreError> {
        c.sql()
            .execute("INSERT INTO t (k, v) VALUES (?1, 'half')", [k])?;
        Ok(())
    };
    let batches = || store.lite().writer.batches.load(Ordering::Relaxed);
    let before = batches();
    // Held open so that the failing write and the next land together, in that order.
    let (held, release) = hold_a_batch(&store, || ());
    let s = store.clone();
    let first = store.submit(move || {
        s.write(|c| {
            half(c, 1)?;
            c.sql()
                .execute("INSERT INTO t (k, v) VALUES (2, NULL)", [])?;
            Ok::<_, StoreError>(())
        })
    });
    let s = store.clone();
    let second = store.submit(move || insert(&s, 3, Some("kept")));
    release.send(()).unwrap();
    let (held, first, second) = block_on(async { (held.await, first.await, second.await) });
    held.unwrap();
    assert!(matches!(first, Ok(Err(_))), "{first:?}");
    second.unwrap().unwrap();
    assert_eq!(
        keys(&store),
        [3],
        "the failed first write left its first row"
    );
    assert_eq!(batches(), before + 2, "both writes were in one batch");

    let (held, release) = hold_a_batch(&store, || ());
    let s = store.clone();
    let first = store.submit(move || {
        s.write(|c| -> Result<(), StoreError> {
            half(c, 4)?;
            panic!("a write that panics after inserting");
        })
    });
    let s = store.clone();
    let second = store.submit(move || insert(&s, 5, Some("kept")));
    release.send(()).unwrap();
    let (held, first, second) = block_on(async { (held.await, first.await, second.await) });
    held.unwrap();
    assert!(
        first.is_err(),
        "the panicking operation has no answer: {first:?}"
    );
    second.unwrap().unwrap();
    assert_eq!(
        keys(&store),
        [3, 5],
        "the panicking first write left its row"
    );
    assert_eq!(batches(), before + 4, "both writes were in one batch");
}
