//! Held INSERTs (`writer/held.rs`): a write after the first of a batch keeps its
//! INSERTs until it ends, and is still all-or-nothing, alone.

use super::*;

fn put(tx: &Tx<'_>, k: i64, v: &str) -> Result<(), StoreError> {
    tx.put("INSERT INTO t (k, v) VALUES (?1, ?2)", &[&k, &v])
}

/// A write submitted as an operation of its own.
type Op = Box<dyn FnOnce(&Store) -> Result<(), StoreError> + Send>;

/// Runs `ops` in one batch, in order, after a first write that keeps row 1 (so every
/// op is a write after the batch kept one, which holds its INSERTs).
fn after_a_kept_write(
    store: &Arc<Store>,
    ops: Vec<Op>,
) -> (Result<(), StoreError>, Vec<Result<(), StoreError>>) {
    let (held, release) = hold_a_batch(store, || ());
    let s = store.clone();
    let first = store.submit(move || s.write(|tx| put(tx, 1, "first")));
    let pending: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let s = store.clone();
            store.submit(move || op(&s))
        })
        .collect();
    release.send(()).unwrap();
    block_on(async {
        held.await.unwrap();
        let first = first.await.and_then(|r| r);
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.and_then(|r| r));
        }
        (first, out)
    })
}

#[test]
fn a_failed_write_leaves_nothing_of_what_it_held_and_others_commit() {
    let (_dir, store) = store();
    let (first, rest) = after_a_kept_write(
        &store,
        vec![
            Box::new(|s| {
                s.write(|tx| {
                    put(tx, 2, "held")?;
                    put(tx, 3, "held")?;
                    Err(StoreError::Corrupt("refused after writing".into()))
                })
            }),
            Box::new(|s| s.write(|tx| put(tx, 4, "kept"))),
        ],
    );
    first.unwrap();
    assert!(matches!(rest[0], Err(StoreError::Corrupt(_))), "{rest:?}");
    rest[1].as_ref().unwrap();
    assert_eq!(keys(&store), [1, 4]);
}

#[test]
fn a_read_after_a_held_insert_sees_it_and_a_failure_after_undoes_both() {
    let (_dir, store) = store();
    let seen = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let saw = seen.clone();
    let (first, rest) = after_a_kept_write(
        &store,
        vec![
            Box::new(move |s| {
                s.write(|tx| {
                    put(tx, 2, "held")?;
                    let n: i64 = tx.one("SELECT count(*) FROM t WHERE k = 2", &[], |r| r.get(0))?;
                    saw.store(n, Ordering::SeqCst);
                    put(tx, 3, "after the read")?;
                    Err(StoreError::Corrupt("refused after reading".into()))
                })
            }),
            Box::new(|s| {
                s.write(|tx| {
                    put(tx, 5, "held")?;
                    let n: i64 = tx.one("SELECT count(*) FROM t", &[], |r| r.get(0))?;
                    put(tx, 5 + n, "counted")
                })
            }),
        ],
    );
    first.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the read saw the held row");
    assert!(rest[0].is_err());
    rest[1].as_ref().unwrap();
    // The second write counted rows 1 and 5: the failed write's rows were gone by then.
    assert_eq!(keys(&store), [1, 5, 7]);
}

#[test]
fn a_held_insert_that_fails_fails_its_write_alone() {
    let (_dir, store) = store();
    let (first, rest) = after_a_kept_write(
        &store,
        vec![
            // Row 1 exists: the INSERT fails when applied, and had nothing before it.
            Box::new(|s| s.write(|tx| put(tx, 1, "clash"))),
            Box::new(|s| s.write(|tx| put(tx, 6, "kept"))),
        ],
    );
    first.unwrap();
    assert!(matches!(rest[0], Err(StoreError::Sqlite(_))), "{rest:?}");
    rest[1].as_ref().unwrap();
    assert_eq!(keys(&store), [1, 6]);
}

#[test]
fn a_write_that_fails_halfway_through_what_it_held_takes_its_batch_down() {
    let (_dir, store) = store();
    let (first, rest) = after_a_kept_write(
        &store,
        vec![
            // Row 2 is applied, then row 1 clashes: row 2 cannot be undone alone.
            Box::new(|s| s.write(|tx| put(tx, 2, "applied").and_then(|()| put(tx, 1, "clash")))),
            Box::new(|s| s.write(|tx| put(tx, 6, "after"))),
        ],
    );
    assert!(
        matches!(first, Err(StoreError::CommitFailed(_))),
        "{first:?}"
    );
    assert!(rest[0].is_err());
    assert!(
        matches!(rest[1], Err(StoreError::CommitFailed(_))),
        "{rest:?}"
    );
    assert_eq!(
        keys(&store),
        Vec::<i64>::new(),
        "nothing of the batch was kept"
    );
    // The store goes on.
    store.write(|tx| put(tx, 8, "next")).unwrap();
    assert_eq!(keys(&store), [8]);
}

#[test]
fn a_write_meant_for_one_row_fails_when_it_changes_another_count() {
    let (_dir, store) = store();
    let update =
        |tx: &Tx<'_>, k: i64| tx.put_one("UPDATE t SET v = 'changed' WHERE k = ?1", &[&k], None);
    // Run at once: alone, and as the first write of a batch.
    assert!(matches!(
        store.write(|tx| update(tx, 9)),
        Err(StoreError::Corrupt(_))
    ));
    let s = store.clone();
    let first_in_batch = block_on(store.submit(move || s.write(|tx| update(tx, 9))));
    assert!(matches!(first_in_batch, Ok(Err(StoreError::Corrupt(_)))));
    // Held.
    let (first, rest) = after_a_kept_write(
        &store,
        vec![
            Box::new(move |s| s.write(|tx| update(tx, 9))),
            Box::new(move |s| s.write(|tx| update(tx, 1))),
        ],
    );
    first.unwrap();
    assert!(matches!(rest[0], Err(StoreError::Corrupt(_))), "{rest:?}");
    rest[1].as_ref().unwrap();
    let v: String = store
        .read(|c| Ok::<_, StoreError>(c.sql().query_row("SELECT v FROM t", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(v, "changed");
}

#[test]
fn the_audit_head_a_batch_keeps_is_forgotten_when_a_write_is_undone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
    let append = |tx: &Tx<'_>, actor: &str| {
        let detail = serde_json::json!({"role": "prod-db"});
        crate::audit::append_forged(tx, actor, "request.created", None, None, &detail)
    };
    let (held, release) = hold_a_batch(&store, || ());
    let mut pending = Vec::new();
    for (i, fails) in [false, true, false, true, false].into_iter().enumerate() {
        let s = store.clone();
        pending.push(store.submit(move || {
            s.write(|tx| {
                append(tx, &format!("user{i}"))?;
                if fails {
                    return Err(StoreError::Corrupt("undone after appending".into()));
                }
                append(tx, &format!("user{i}"))
            })
        }));
    }
    release.send(()).unwrap();
    let results = block_on(async {
        held.await.unwrap();
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.unwrap());
        }
        out
    });
    let seqs: Vec<Option<i64>> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(seqs, [Some(2), None, Some(4), None, Some(6)]);
    let verified = crate::audit::verify_store(&store).unwrap();
    assert_eq!(verified.events, 6);
}

#[test]
fn plain_writes_take_no_savepoint_and_a_read_after_a_held_insert_takes_one() {
    let (_dir, store) = store();
    let savepoints = || store.lite().writer.savepoints.load(Ordering::Relaxed);
    let ops: Vec<Op> = (2..12)
        .map(|k| -> Op { Box::new(move |s| s.write(|tx| put(tx, k, "plain"))) })
        .collect();
    let (first, rest) = after_a_kept_write(&store, ops);
    first.unwrap();
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert_eq!(savepoints(), 0, "ten plain writes after a kept one");
    // A write that reads after its held INSERT, after a kept write: one savepoint.
    let s = store.clone();
    let (held, release) = hold_a_batch(&store, || ());
    let kept = store.submit(move || s.write(|tx| put(tx, 30, "kept")));
    let s = store.clone();
    let reads = store.submit(move || {
        s.write(|tx| {
            put(tx, 31, "held")?;
            tx.one("SELECT count(*) FROM t", &[], |r| r.get::<i64>(0))
                .map(drop)
        })
    });
    release.send(()).unwrap();
    block_on(async {
        held.await.unwrap();
        kept.await.unwrap().unwrap();
        reads.await.unwrap().unwrap();
    });
    assert_eq!(savepoints(), 1);
}
