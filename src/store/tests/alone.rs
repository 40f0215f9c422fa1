//! Writes made alone (threads outside the batch writer, CLI commands): each commits
//! by itself, and a failure undoes only its own work.

use super::*;

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
fn a_write_inside_a_write_made_alone_is_refused_not_a_deadlock() {
    let (_dir, store) = store();
    let inner = store.write(|_| Ok::<_, StoreError>(insert(&store, 1, Some("x"))));
    assert!(matches!(inner, Ok(Err(StoreError::Nested))), "{inner:?}");
    // And the store still works afterwards.
    insert(&store, 2, Some("y")).unwrap();
    assert_eq!(count(&store), 1);
}
