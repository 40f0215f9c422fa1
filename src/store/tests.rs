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
