//! The PostgreSQL store pipelines a write's INSERTs (sent without waiting for their
//! answers) inside group-commit batches. The promise (`src/store/pg/batch.rs`): an
//! operation is told its write succeeded only if everything it wrote is committed. These
//! tests make a pipelined INSERT fail (a duplicate audit sequence number) in a batch on a
//! real PostgreSQL and check what each operation is told against what the database holds.
//! A connection is driven only by the thread using it, so the pool drives it when it
//! takes it back and before it lends it; the last tests check what that is for: no
//! session left inside a read's transaction, and no dead connection lent.

use std::sync::Arc;
use std::sync::mpsc;

use countersign::config::PgTls;
use countersign::store::audit::{Fields, RowRef, insert};
use countersign::store::{PgOptions, Store, StoreError, Tx};

use crate::pg::fresh_database;

/// A store on a fresh database of the shared test cluster.
pub(crate) fn store() -> (crate::pg::PgDatabase, Arc<Store>) {
    let db = fresh_database();
    let store = Store::open_postgres(&PgOptions {
        url: db.url.clone(),
        tls: PgTls::Disable,
        password: Some(db.password.clone()),
        pool_size: 4,
    })
    .expect("open the PostgreSQL store");
    (db, Arc::new(store))
}

/// Inserts an audit row with sequence number `seq` (hashes are not checked here).
pub(crate) fn row(tx: &Tx<'_>, seq: i64, actor: &str) -> Result<(), StoreError> {
    let hash = format!("{seq:064x}");
    insert(
        tx,
        &RowRef {
            fields: Fields {
                seq,
                at: "2026-12-04T00:00:00.000Z",
                actor,
                action: "test.pipeline",
                request_id: None,
                serial: None,
                detail: "{}",
            },
            prev_hash: &hash,
            hash: &hash,
        },
    )
}

/// The actors of the audit rows stored, in sequence order.
pub(crate) fn stored(db: &crate::pg::PgDatabase) -> Vec<String> {
    db.psql("SELECT actor FROM audit ORDER BY seq")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One operation of a batch: a write (or several) on the store.
pub(crate) type Op = Box<dyn FnOnce(&Store) -> Result<(), StoreError> + Send>;

/// Runs `ops` as one batch: a first operation holds the writer thread until all of
/// them are queued behind it, so they run together in the next batch.
pub(crate) fn one_batch(store: &Arc<Store>, ops: Vec<Op>) -> Vec<Result<(), StoreError>> {
    behind_a_held_batch(store, || {
        ops.into_iter()
            .map(|op| {
                let s = store.clone();
                store.submit(move || op(&s))
            })
            .collect()
    })
}

/// An operation queued on the store: its result once its batch is durable.
pub(crate) type Queued<T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Result<T, StoreError>, StoreError>> + Send>,
>;

/// Holds the writer thread with a first operation while `queue` queues operations
/// behind it (so they run together in the next batch); then their results, in order.
pub(crate) fn behind_a_held_batch<T>(
    store: &Arc<Store>,
    queue: impl FnOnce() -> Vec<Queued<T>>,
) -> Vec<Result<T, StoreError>> {
    let (release, held) = mpsc::channel::<()>();
    let (running, started) = mpsc::channel::<()>();
    let holder = store.submit(move || {
        running.send(()).unwrap();
        held.recv().unwrap();
    });
    started.recv().unwrap();
    let pending = queue();
    release.send(()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        holder.await.unwrap();
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.and_then(|r| r));
        }
        out
    })
}

#[test]
fn an_operation_whose_pipelined_insert_failed_is_never_told_it_succeeded() {
    let (db, store) = store();
    store.write(|tx| row(tx, 1, "first")).unwrap();
    let results = one_batch(
        &store,
        vec![
            // A good row, then one that clashes with seq 1: both sent without waiting,
            // and the operation returns Ok before the clash is known.
            Box::new(|s: &Store| {
                s.write(|tx| {
                    row(tx, 2, "good-then-bad")?;
                    row(tx, 1, "clash")
                })
            }),
            // A later write of the same batch that fails on its own: undoing it must
            // not undo the earlier operation's work under it while it is told Ok.
            Box::new(|s: &Store| {
                s.write(|tx| {
                    row(tx, 3, "later")?;
                    Err(StoreError::Corrupt("this write gives up".into()))
                })
            }),
            // An independent write after both.
            Box::new(|s: &Store| s.write(|tx| row(tx, 4, "last"))),
        ],
    );
    let rows = stored(&db);
    assert!(
        results[0].is_err() || rows.contains(&"good-then-bad".to_owned()),
        "told Ok, but its row is not stored: {results:?}, rows {rows:?}"
    );
    assert!(results[1].is_err(), "the failing write was told Ok");
    for (i, r) in results.iter().enumerate() {
        if r.is_ok() {
            let actor = ["good-then-bad", "later", "last"][i];
            assert!(
                rows.contains(&actor.to_owned()),
                "operation {i} was told Ok but its row is not stored: {results:?}, {rows:?}"
            );
        }
    }
    assert!(!rows.contains(&"clash".to_owned()), "{rows:?}");
    assert!(!rows.contains(&"later".to_owned()), "{rows:?}");
    // The batch could not commit with a failed statement in it: nobody was told Ok.
    assert!(
        results.iter().all(Result::is_err),
        "a batch with a failed INSERT committed something: {results:?}, rows {rows:?}"
    );
    assert_eq!(rows, ["first"]);
    // The store goes on: the next write commits.
    store.write(|tx| row(tx, 2, "after")).unwrap();
    assert_eq!(stored(&db), ["first", "after"]);
}

#[test]
fn a_write_that_fails_on_its_own_undoes_only_itself_with_pipelined_inserts() {
    let (db, store) = store();
    let results = one_batch(
        &store,
        vec![
            Box::new(|s: &Store| s.write(|tx| row(tx, 1, "kept"))),
            Box::new(|s: &Store| {
                s.write(|tx| {
                    row(tx, 2, "undone")?;
                    Err(StoreError::Corrupt("this write gives up".into()))
                })
            }),
            Box::new(|s: &Store| s.write(|tx| row(tx, 2, "kept too"))),
        ],
    );
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    assert_eq!(stored(&db), ["kept", "kept too"]);
}

/// The sessions of the store (application `countersign`) in `state`, from the server.
fn sessions_in(db: &crate::pg::PgDatabase, state: &str) -> usize {
    db.psql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'countersign' AND state = '{state}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn a_pooled_connection_is_not_left_inside_a_reads_transaction() {
    let (db, store) = store();
    store.write(|tx| row(tx, 1, "first")).unwrap();
    let seq = store.read(countersign::store::audit::last_seq).unwrap();
    assert_eq!(seq, 1);
    // The read's ROLLBACK went out without waiting; the session must be idle, not idle
    // in a transaction holding its snapshot until the server's timeout ends it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while sessions_in(&db, "idle in transaction") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a pooled connection stays inside the read's transaction"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_connection_the_server_ended_while_pooled_is_not_lent() {
    let (db, store) = store();
    store.write(|tx| row(tx, 1, "first")).unwrap();
    store.read(countersign::store::audit::last_seq).unwrap();
    // The server ends every session of the store (as at a restart or failover) while
    // the connections sit in the pool.
    let ended = db.psql(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'countersign') t",
    );
    assert_ne!(ended.trim(), "0", "no session to end");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sessions_in(&db, "idle") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sessions did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The next read and write get a live connection, not the dead pooled one.
    assert_eq!(store.read(countersign::store::audit::last_seq).unwrap(), 1);
    store.write(|tx| row(tx, 2, "after")).unwrap();
    assert_eq!(stored(&db), ["first", "after"]);
}

/// `Store::read_single` runs outside a transaction on PostgreSQL, so it must be one
/// statement (one snapshot): a second one is refused, not run on another snapshot.
#[test]
fn a_single_statement_read_refuses_a_second_statement() {
    let (_db, store) = store();
    store.write(|tx| row(tx, 1, "first")).unwrap();
    assert_eq!(
        store
            .read_single(countersign::store::audit::last_seq)
            .unwrap(),
        1
    );
    let two = store.read_single(|tx| {
        countersign::store::audit::last_seq(tx)?;
        countersign::store::audit::last_seq(tx)
    });
    assert!(matches!(two, Err(StoreError::Nested)), "{two:?}");
    // The connection goes back to the pool usable.
    assert_eq!(store.read(countersign::store::audit::last_seq).unwrap(), 1);
}

/// A batch queued while the batch before it runs, whose COMMIT then fails (a pipelined
/// INSERT clashed): nobody of the failed batch is told Ok, and the next batch begins
/// on a good connection and commits. (Written for an experiment that sent a batch's
/// BEGIN behind the COMMIT before it, on the same connection: docs/benchmark.md.)
#[test]
fn a_batch_behind_a_failed_commit_begins_afresh_and_commits() {
    let (db, store) = store();
    store.write(|tx| row(tx, 1, "first")).unwrap();
    let (release, held) = mpsc::channel::<()>();
    let (running, started) = mpsc::channel::<()>();
    let holder = store.submit(move || {
        running.send(()).unwrap();
        held.recv().unwrap();
    });
    started.recv().unwrap();
    // The failing batch: its operation waits, while it runs, until the next operation
    // is queued, so that one is planned and begun behind this batch's COMMIT.
    let (a_running, a_started) = mpsc::channel::<()>();
    let (b_queued, b_was_queued) = mpsc::channel::<()>();
    let s = store.clone();
    let failing = store.submit(move || {
        a_running.send(()).unwrap();
        b_was_queued.recv().unwrap();
        s.write(|tx| {
            row(tx, 2, "good-then-bad")?;
            row(tx, 1, "clash")
        })
    });
    release.send(()).unwrap();
    a_started.recv().unwrap();
    let s = store.clone();
    let next = store.submit(move || s.write(|tx| row(tx, 2, "next")));
    b_queued.send(()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (failed, committed) = rt.block_on(async {
        holder.await.unwrap();
        (failing.await.and_then(|r| r), next.await.and_then(|r| r))
    });
    assert!(failed.is_err(), "a batch that could not commit told Ok");
    assert!(committed.is_ok(), "the batch behind it: {committed:?}");
    assert_eq!(stored(&db), ["first", "next"]);
}
