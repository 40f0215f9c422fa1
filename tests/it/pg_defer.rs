//! A batch's operations hold their INSERTs back and take a SAVEPOINT only when they must
//! send something before they end (`src/store/pg/defer.rs`): most take none, so a batch
//! starts no subtransactions. These tests check, on a real PostgreSQL, that an operation
//! still reads its own writes, that one that fails or panics leaves nothing while the
//! others of its batch commit, and that a batch of plain writes holds one transaction id.

use std::sync::{Arc, Mutex};

use countersign::store::audit::last_seq;
use countersign::store::{Store, StoreError};

use crate::pg_pipeline::{Op, one_batch, row, store, stored};

#[test]
fn a_write_reads_its_own_held_insert_and_is_undone_whole_when_it_fails() {
    let (db, store) = store();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (seen1, seen2) = (seen.clone(), seen.clone());
    let results = one_batch(
        &store,
        vec![
            Box::new(|s: &Store| s.write(|tx| row(tx, 1, "kept"))),
            // Its INSERT is held back; the read after it must still see it.
            Box::new(move |s: &Store| {
                s.write(|tx| {
                    row(tx, 2, "read back, then given up")?;
                    seen1.lock().unwrap().push(last_seq(tx)?);
                    row(tx, 3, "also given up")?;
                    Err(StoreError::Corrupt("this write gives up".into()))
                })
            }),
            // The same sequence number again: the failed write left nothing behind.
            Box::new(move |s: &Store| {
                s.write(|tx| {
                    row(tx, 2, "kept too")?;
                    seen2.lock().unwrap().push(last_seq(tx)?);
                    Ok(())
                })
            }),
        ],
    );
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        [2, 2],
        "a write did not see its own row"
    );
    assert_eq!(stored(&db), ["kept", "kept too"]);
}

#[test]
fn a_write_that_panics_after_its_inserts_leaves_nothing_and_the_batch_goes_on() {
    let (db, store) = store();
    let results = one_batch(
        &store,
        vec![
            Box::new(|s: &Store| s.write(|tx| row(tx, 1, "kept"))),
            Box::new(|s: &Store| {
                s.write(|tx| {
                    row(tx, 2, "held when it panicked")?;
                    panic!("a bug in a write (deliberate, in a test)")
                })
            }),
            Box::new(|s: &Store| s.write(|tx| row(tx, 2, "kept too"))),
        ],
    );
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(results[1].is_err(), "{results:?}");
    assert_eq!(stored(&db), ["kept", "kept too"]);
}

#[test]
fn a_batch_of_plain_writes_starts_no_subtransaction() {
    let (db, store) = store();
    let ops: Vec<Op> = (1..=5)
        .map(|seq| -> Op { Box::new(move |s: &Store| s.write(|tx| row(tx, seq, "written"))) })
        .collect();
    let results = one_batch(&store, ops);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(stored(&db).len(), 5);
    // A row's xmin is the id of the (sub)transaction that wrote it: with a SAVEPOINT
    // per write, each write's rows would carry one of their own.
    let writers = db.psql("SELECT count(DISTINCT xmin::text) FROM audit");
    assert_eq!(
        writers.trim(),
        "1",
        "the batch's writes ran in subtransactions"
    );
}

#[test]
fn an_operations_held_writes_reach_the_server_as_one_statement() {
    let (db, store) = store();
    let ops: Vec<Op> = vec![
        Box::new(|s: &Store| s.write(|tx| row(tx, 1, "a").and_then(|()| row(tx, 2, "a")))),
        Box::new(|s: &Store| s.write(|tx| row(tx, 3, "b").and_then(|()| row(tx, 4, "b")))),
    ];
    let results = one_batch(&store, ops);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    // A row's cmin is the number of the statement of its transaction that wrote it.
    let cmins: Vec<String> = db
        .psql("SELECT cmin FROM audit ORDER BY seq")
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(cmins.len(), 4, "{cmins:?}");
    assert_eq!(
        cmins[0], cmins[1],
        "one operation's two rows, one statement"
    );
    assert_eq!(
        cmins[2], cmins[3],
        "one operation's two rows, one statement"
    );
    assert_ne!(cmins[1], cmins[2], "two operations, two statements");
}

#[test]
fn a_write_meant_for_one_row_that_changes_none_fails_its_joined_statement_and_batch() {
    use countersign::names::RequestId;
    use countersign::store::requests::{Decision, Status, decide_read_pending};
    let (db, store) = store();
    let ops: Vec<Op> = vec![
        Box::new(|s: &Store| s.write(|tx| row(tx, 1, "before"))),
        Box::new(|s: &Store| {
            s.write(|tx| {
                row(tx, 2, "with the update")?;
                // No such request: the status change changes no row.
                let id = RequestId::parse("r-aaaaaaaaaaaa").expect("a request id");
                let decision = Decision {
                    status: Status::Denied,
                    at: 1,
                    by: "bob",
                    code: None,
                    note: None,
                };
                let bob = countersign::names::UserName::parse("bob").expect("a user name");
                decide_read_pending(tx, (&id, &bob), &decision).map(drop)
            })
        }),
    ];
    let results = one_batch(&store, ops);
    assert!(
        results.iter().all(Result::is_err),
        "a batch with a failed one-row write was told Ok: {results:?}"
    );
    assert_eq!(stored(&db), Vec::<String>::new());
}
